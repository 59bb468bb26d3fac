"""`python -m exporter` is `edgex`."""
from exporter.cli import run

run()
