"""The lab: the Temporal dev server, the learner's app and worker processes, and the failure simulation.

- :mod:`.server`: starting and stopping the embedded dev server;
- :mod:`.app`, :mod:`.processes`, :mod:`.workspace`: the app and its worker processes;
- :mod:`.simulate`, :mod:`.simulate_options`: ``grader simulate``;
- :mod:`.replay`: replaying histories against the workflow code.
"""
