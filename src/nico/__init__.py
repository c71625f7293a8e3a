"""nico-flow: the NICo REST API for racks, trays, tasks and operation rules on Temporal."""

__version__ = "0.1.0"
