"""What a file job reports, local or on Ray: counts, time, padding, gold scores, and the one-line summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spanqa.engine.jobs.gold import GoldScores


@dataclass(frozen=True)
class AnswerFileResult:
    answered: int  # output lines this call wrote
    already_answered: int  # complete lines an earlier run had written (resume)
    errors: int  # bad input lines skipped, over the whole input
    seconds: float  # wall time of this call
    padding_fraction: float | None  # the engine's, over the batches this call ran; None on Ray
    gold: GoldScores | None  # None when no valid record had gold answers, and on Ray (score with qa-eval)
    errors_file: str | None  # where the skipped lines are listed; None when there were none
    replay_mismatches: int  # resume: re-answered lines that differ from those already written (thread counts?)
    actors: int = 0  # Ray actors that answered; 0 for a run in this process
    on_gpus: bool = False  # the Ray actors ran on GPUs

    @property
    def examples_per_second(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0

    def summary_line(self) -> str:
        parts = [f"answered {self.answered}"]
        if self.already_answered:
            parts[0] += f" (+{self.already_answered} already in the output)"
        parts.append(f"{self.errors} bad lines skipped" + (f" (see {self.errors_file})" if self.errors_file else ""))
        parts.append(f"{self.seconds:.2f} s, {self.examples_per_second:.1f} examples/s")
        if self.padding_fraction is not None:
            parts.append(f"padding {100 * self.padding_fraction:.1f}%")
        if self.gold is not None:
            parts.append(
                f"EM {self.gold.exact_match:.2f} F1 {self.gold.f1:.2f} on {self.gold.scored} questions with gold "
                f"answers (SQuAD {self.gold.rules} rules)"
            )
        if self.actors:
            plural = "s" if self.actors != 1 else ""
            parts.append(f"{self.actors} Ray actor{plural} on {'GPUs' if self.on_gpus else 'CPUs'}")
        return "; ".join(parts)


class PaddingMeter:
    """The padding share of the batches an engine runs from now on: its stats count from its creation, and one
    engine may answer several files."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self._before = _token_counts(engine)

    def fraction(self) -> float | None:
        after = _token_counts(self._engine)
        if self._before is None or after is None or after[1] < self._before[1]:  # counts reset meanwhile
            return None
        tokens, padded = after[0] - self._before[0], after[1] - self._before[1]
        return 1.0 - tokens / padded if padded else None


def _token_counts(engine: Any) -> tuple[int, int] | None:
    stats = getattr(engine, "stats", None)
    if stats is None or not hasattr(stats, "tokens") or not hasattr(stats, "padded_tokens"):
        return None
    return stats.tokens, stats.padded_tokens
