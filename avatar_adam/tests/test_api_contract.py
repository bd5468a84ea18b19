"""The v1 contract: removing or renaming an endpoint, an operation or a field fails this
test; additions pass. After a deliberate, additive change, refresh the snapshot with

    UPDATE_API_SNAPSHOT=1 .venv/bin/python -m pytest avatar_adam/tests/test_api_contract.py
"""

import json
import os
from pathlib import Path

from drf_spectacular.generators import SchemaGenerator

SNAPSHOT = Path(__file__).parent / "data" / "api_v1_contract.json"


def contract() -> dict:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = sorted(
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )
    components = {
        name: sorted(component.get("properties", {}))
        for name, component in schema["components"]["schemas"].items()
        if component.get("type") == "object"
    }
    return {"operations": operations, "components": components}


def test_the_v1_contract_only_grows():
    current = contract()
    if os.environ.get("UPDATE_API_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    promised = json.loads(SNAPSHOT.read_text())
    missing_operations = sorted(set(promised["operations"]) - set(current["operations"]))
    assert not missing_operations, f"v1 operations removed or renamed: {missing_operations}"
    for name, fields in promised["components"].items():
        assert name in current["components"], f"v1 schema component {name} removed or renamed"
        missing = sorted(set(fields) - set(current["components"][name]))
        assert not missing, f"v1 fields removed or renamed from {name}: {missing}"
