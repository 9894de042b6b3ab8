"""The chaos runner's process handling is the shared toolkit (common/processes.py)."""

from common.processes import ServiceProcess, free_port, snapshot_code, wait_serving

__all__ = ["ServiceProcess", "free_port", "snapshot_code", "wait_serving"]
