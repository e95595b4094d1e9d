"""What /docs shows of POST /v1/answer. Documentation only: requests are checked by the record parser
(`parsing.parse_body`, the rules qa-answer applies), not by this schema, so the two cannot disagree on what is valid
without a test saying so (tests/engine/serve check the examples here against the service)."""

from __future__ import annotations

_ID = {"anyOf": [{"type": "string"}, {"type": "integer"}], "description": "kept as given; default: the position"}
_PASSAGE = {
    "anyOf": [
        {"type": "string"},
        {"type": "object", "properties": {"text": {"type": "string"}, "id": _ID}, "required": ["text"]},
    ]
}
RECORD_SCHEMA = {
    "type": "object",
    "title": "Record",
    "properties": {
        "id": _ID,
        "question": {"type": "string"},
        "context": {"type": "string", "description": "the passage that holds the answer"},
        "contexts": {"type": "array", "items": _PASSAGE, "description": "several passages instead of one context"},
        "top_k": {"type": "integer", "minimum": 1, "description": "that many best answers, as top_answers"},
        "title": {"type": "string"},
    },
    "required": ["question"],
    "additionalProperties": True,  # passed through to the answer, as qa-answer does
}
EXAMPLE_RECORD = {
    "id": "q1",
    "question": "Where is the Eiffel Tower?",
    "context": "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
}
ANSWER_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"anyOf": [RECORD_SCHEMA, {"type": "array", "items": RECORD_SCHEMA, "minItems": 1}]},
            "example": EXAMPLE_RECORD,
        }
    },
}
_ANSWER = {
    "type": "object",
    "title": "Answer",
    "properties": {
        "id": _ID,
        "answer": {"type": "string"},
        "score": {"type": "number"},
        "start": {"type": "integer"},
        "end": {"type": "integer"},
        "is_impossible": {"type": "boolean"},
    },
}
_DETAIL = {"content": {"application/json": {"schema": {"type": "object", "properties": {"detail": {}}}}}}
ANSWER_RESPONSES = {
    200: {
        "description": "The answer (an object for an object, a list in order for a list), in qa-answer's fields",
        "content": {"application/json": {"schema": {"anyOf": [_ANSWER, {"type": "array", "items": _ANSWER}]}}},
    },
    413: {"description": "Body, context or record count over its limit", **_DETAIL},
    422: {"description": "A record qa-answer would refuse; detail names the item and the field", **_DETAIL},
    503: {"description": "Busy or shutting down; retry after the Retry-After header's seconds", **_DETAIL},
    504: {"description": "No answer within the request timeout", **_DETAIL},
}
