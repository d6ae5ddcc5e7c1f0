"""Built-in tools a language model may call: a calculator, the date and time, and unit conversion.

`builtin_tools()` makes a registry of them; `ToolRegistry.specs()` gives them in OpenAI's shape
for the prompt, and `ToolRegistry.call()` runs one from the name and arguments the model wrote.
"""

from .calculator import CalculatorTool
from .clock import DateTimeTool
from .registry import (
    MAX_RESULT_CHARS,
    TOOL_TIME_LIMIT_S,
    Tool,
    ToolError,
    ToolOutcome,
    ToolRegistry,
    builtin_tools,
)
from .units import ConvertUnitsTool

__all__ = [
    "MAX_RESULT_CHARS",
    "TOOL_TIME_LIMIT_S",
    "CalculatorTool",
    "ConvertUnitsTool",
    "DateTimeTool",
    "Tool",
    "ToolError",
    "ToolOutcome",
    "ToolRegistry",
    "builtin_tools",
]
