"""Field types shared by the REST request bodies: each constraint is in the JSON schema the
OpenAPI document publishes, so what the schema allows the gateway takes (no hidden rule)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

LABEL_PATTERN = r"^[\w .:@/+#()=,-]{1,200}$"
KEY_ID_PATTERN = "^[0-9a-f]{32}$"
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$"

Label = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=LABEL_PATTERN,
        description="letters, digits, space and ._:@/+#()=,- (no control or markup characters)",
    ),
]
KeyId = Annotated[str, Field(pattern=KEY_ID_PATTERN, description="32 lowercase hex digits")]
Tag = Annotated[
    str,
    Field(
        max_length=64,
        pattern=TAG_PATTERN,
        description="1-64 letters, digits and _ . : / - (starting with a letter or digit)",
    ),
]
