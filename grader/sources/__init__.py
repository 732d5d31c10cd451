"""Where histories come from: exported files and bundles, or a Temporal server read live.

- :mod:`.loaded`: :class:`~grader.sources.loaded.Loaded`, what every source returns;
- :mod:`.files`: JSON files, folders of them and bundles (``read_files``);
- :mod:`.live`: a server's runs (``read_live``, ``fetch_run``, the visibility query);
- :mod:`.bundles`: the signed bundle a learner hands in;
- :mod:`.connect`: how to reach a server (address, namespace, TLS, API key);
- :mod:`.server_note`: the note ``grader server`` leaves so links find its Web UI.

Nothing is imported here, so offline grading never loads the SDK.
"""
