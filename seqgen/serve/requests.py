"""What every request body shares: unknown fields are refused, and ``model`` picks one of
the loaded models. Every field of every request has a bound (a text's length, a list's, each
number's range), so no request can ask for unbounded work."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_TEXT = 10_000  # characters of one text in a request
MAX_ITEMS = 256  # texts or sentences in one request

Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]


class ModelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(None, max_length=200, description="Which loaded model (GET "
                              "/models); default: the first of its task.")
