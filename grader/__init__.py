"""Failure Lab: grade Temporal's money-transfer failure experiments from workflow histories.

The package is a library first; ``grader.cli`` is a thin command line over it.
Data flows one way: source -> history -> evidence -> checks -> report -> renderer.
"""

__version__ = "0.1.0"
