"""How far an ingest has got: files and bytes read of the total, rate, time left."""

from __future__ import annotations

from dataclasses import dataclass

READING = "reading files"
WRITING = "writing shards"


@dataclass(frozen=True)
class IngestProgress:
    """A snapshot of one category's ingest; bytes are the input files' sizes on disk.

    Reading comes first (files, in parallel); then the shards are sorted and written. The
    time left is estimated for the current step from its own rate so far.
    """

    category: str
    step: str
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    shards_done: int
    shards_total: int
    seconds: float
    step_seconds: float

    @property
    def rate_mb_s(self) -> float:
        return self.bytes_done / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        if self.step == READING:
            done, total = self.bytes_done, self.bytes_total
        else:
            done, total = self.shards_done, self.shards_total
        if done == 0:
            return None
        return self.step_seconds * (total - done) / done

    def message(self) -> str:
        eta = "?" if self.eta_s is None else f"{self.eta_s:,.0f}s"
        return (
            f"{self.category}: {self.step}: {self.files_done:,}/{self.files_total:,} files, "
            f"{self.bytes_done / 1e6:,.1f}/{self.bytes_total / 1e6:,.1f} MB read "
            f"({self.rate_mb_s:.1f} MB/s), {self.shards_done}/{self.shards_total} shards written, "
            f"{self.seconds:,.0f}s elapsed, ~{eta} left in this step"
        )

    def as_metadata(self) -> dict[str, object]:
        eta = self.eta_s
        return {
            "step": self.step,
            "files_done": self.files_done,
            "files_total": self.files_total,
            "bytes_done": self.bytes_done,
            "bytes_total": self.bytes_total,
            "shards_done": self.shards_done,
            "shards_total": self.shards_total,
            "elapsed_s": round(self.seconds, 1),
            "rate_mb_s": round(self.rate_mb_s, 2),
            "eta_s": None if eta is None else round(eta, 1),
        }
