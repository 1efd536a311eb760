"""Dashboards served through Voila.

`jupyter_agnes.dashboards.sales` builds ipywidgets (and so imports IPython): import it
from a kernel or notebook only. `sales_data` and `sales_render` are pure.
"""
