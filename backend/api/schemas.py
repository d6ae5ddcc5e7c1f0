"""Request bodies of the OpenAI-compatible API, with server-side bounds on every number."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

__all__ = ["ChatCompletionBody", "ChatMessageBody", "ContentPart"]

MAX_STOP = 4


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class FunctionCallBody(BaseModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    arguments: Annotated[str, StringConstraints(max_length=65536)] = "{}"


class ToolCallBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    type: Literal["function"] = "function"
    function: FunctionCallBody


class ChatMessageBody(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    tool_calls: list[ToolCallBody] | None = Field(default=None, max_length=128)
    tool_call_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    reasoning_content: str | None = None

    def text(self) -> str:
        """The plain text of the message; non-text parts are refused by the route before this."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text or "" for p in self.content if p.type == "text")


class StreamOptions(BaseModel):
    include_usage: bool = False


class NamedFunction(BaseModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]


class NamedToolChoice(BaseModel):
    type: Literal["function"] = "function"
    function: NamedFunction


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: Annotated[str, StringConstraints(max_length=64)] = "response"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: JsonSchemaFormat | None = None


class ChatCompletionBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    messages: list[ChatMessageBody] = Field(min_length=1, max_length=2000)
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=131072)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=131072)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    stop: str | list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] | None = None
    n: int = Field(default=1, ge=1, le=1)
    tools: list[Any] | None = Field(default=None, max_length=10_000)
    """Checked in full by `chat/tool_specs.py` (the count too, with a clearer message)."""
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high"] | None = None
    think: bool | None = None
    """Thinking on or off, as Ollama's API has it."""

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        if isinstance(value, str) and not 1 <= len(value) <= 256:
            raise ValueError("a stop sequence is 1 to 256 characters")
        return value

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens
