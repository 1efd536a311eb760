from jupyter_agnes.cli import run

run()
