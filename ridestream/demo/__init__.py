"""`ridestream demo`: the whole loop on real data, end to end (see `ridestream.demo.run`).

`run` orchestrates; `data` fetches the months it lacks; `processes` starts and stops the
services; `watch` tallies the topics and draws the progress line; `summary` prints the end.
"""

from ridestream.demo.processes import DemoError, Processes
from ridestream.demo.run import main

__all__ = ["DemoError", "Processes", "main"]
