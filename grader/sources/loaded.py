"""What reading a source gives: histories, one line per input that failed, and findings.

Every source (files, bundles, a live server) returns a :class:`Loaded`;
nothing after the sources knows which one was used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from grader.engine.history import History
from grader.engine.integrity import Finding


@dataclass
class Loaded:
    """Histories read from one source, plus one line per input that failed."""

    histories: list[History] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: A description of each source read, for the report.
    sources: list[str] = field(default_factory=list)
    #: Integrity findings made while reading (a bundle file whose hash does not match), by history source.
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    #: The learner a bundle's manifest names, by history source (whose work the file claims to be).
    claims: dict[str, str] = field(default_factory=dict)
    #: Other learners' runs on the same task queues, read only to compare worker processes
    #: with (cross-talk, grader.engine.ownership); never graded.
    others: list[History] = field(default_factory=list)

    def merge(self, other: "Loaded") -> None:
        """Add everything ``other`` read to this one."""
        self.histories += other.histories
        self.errors += other.errors
        self.sources += other.sources
        for source, found in other.findings.items():
            self.findings.setdefault(source, []).extend(found)
        self.claims.update(other.claims)
        self.others += other.others
