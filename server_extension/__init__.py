"""The jupyter-server adapter: translates HTTP into calls on the jupyter_agnes core."""
