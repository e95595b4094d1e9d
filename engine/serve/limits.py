"""What the service takes on at once, so that a burst is refused at the door rather than queued without bound.

Admission rules (checked on the event loop, so no lock is needed):
1. At most `max_concurrent` requests are admitted at once (being read, queued, in the model or being answered);
   the next one is refused with 503 and a Retry-After, as Haystack's REST API does past its concurrency cap.
2. At most `max_queued_questions` questions are admitted at once over all requests (a list request counts each of
   its records, once its body is read); a request that would pass it is refused the same way.
3. While the service drains on shutdown, every new request is refused the same way.
A refused request costs no model time and changes nothing for the requests already admitted.
"""

from __future__ import annotations

from dataclasses import dataclass


class Overloaded(Exception):
    """A request refused for want of room (503, `retry_after_s` seconds)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass
class Ticket:
    questions: int = 0


class Admission:
    def __init__(self, max_requests: int, max_questions: int, retry_after_s: int) -> None:
        self.max_requests = max_requests
        self.max_questions = max_questions
        self.retry_after_s = retry_after_s
        self.requests = 0
        self.questions = 0
        self.draining = False

    def admit(self) -> Ticket:
        if self.draining:
            raise Overloaded("the service is shutting down", self.retry_after_s)
        if self.requests >= self.max_requests:
            raise Overloaded(f"busy: {self.requests} requests in progress (at most {self.max_requests})",
                             self.retry_after_s)  # fmt: skip
        self.requests += 1
        return Ticket()

    def add_questions(self, ticket: Ticket, count: int) -> None:
        if self.questions + count > self.max_questions:
            raise Overloaded(
                f"busy: {self.questions} questions in progress; {count} more would pass {self.max_questions}",
                self.retry_after_s,
            )
        self.questions += count
        ticket.questions += count

    def release(self, ticket: Ticket) -> None:
        self.requests -= 1
        self.questions -= ticket.questions
        ticket.questions = 0
