"""The engine: from a history to a grade, knowing nothing of where histories come from or how reports look.

history -> evidence -> checks -> report, with the rubric that chooses the
checks, the integrity rules, the run timeline the report draws, learner ids,
and the class-level result types (:mod:`.classreport`). The engine imports
only its own modules and the base ones (errors, defaults, resources,
escape); a test (tests/test_layout.py) keeps it that way.
"""
