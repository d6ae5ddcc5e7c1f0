from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from backend.api.schemas import ChatCompletionBody

BASE: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("patch", [
    {"max_tokens": -1}, {"max_tokens": 0}, {"max_tokens": 10**9}, {"temperature": 3},
    {"top_p": 0}, {"n": 2}, {"messages": []}, {"model": ""},
    {"stop": ["a", "b", "c", "d", "e"]}, {"stop": ""},
    {"messages": [{"role": "robot", "content": "x"}]},
])
def test_out_of_bounds_values_are_refused(patch: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ChatCompletionBody.model_validate({**BASE, **patch})


def test_accepts_openai_shapes() -> None:
    body = ChatCompletionBody.model_validate({
        **BASE, "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
        "stop": "END", "max_completion_tokens": 7, "user": "ignored", "frequency_penalty": 0})
    assert body.messages[1].text() == "ab"
    assert body.stop_list() == ["END"]
    assert body.token_limit() == 7
