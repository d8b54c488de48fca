"""/openapi.json: OpenAPI 3.1, built from schemas.py, naming exactly the routes the server has."""

from __future__ import annotations

import dataclasses

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from reference_exchange import published_schemas, schemas
from reference_exchange.config import Settings
from reference_exchange.openapi import COMPONENT_SCHEMAS, build_openapi
from reference_exchange.server import create_app

METHODS = {"get", "post", "put", "patch", "delete", "options", "head"}


@pytest.fixture
async def client(aiohttp_client):
    return await aiohttp_client(create_app(dataclasses.replace(Settings(), journal_path=None)))


def router_operations(app) -> set[tuple[str, str]]:
    """(path, method) of every route; HEAD is aiohttp's automatic twin of GET, not a route of its own."""
    operations = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        info = route.resource.get_info()
        operations.add((info.get("path") or info.get("formatter"), route.method.lower()))
    return operations


def document_operations(document: dict) -> set[tuple[str, str]]:
    return {
        (path, method) for path, item in document["paths"].items() for method in item if method in METHODS
    }


async def test_served_document_is_openapi_3_1_and_covers_every_route(client):
    response = await client.get("/openapi.json")
    assert response.status == 200 and response.content_type == "application/json"
    document = await response.json()
    assert document == build_openapi()
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] and document["info"]["version"]
    # Both ways: a route added without documenting it (e.g. /demo/load-test) fails here.
    assert router_operations(client.app) == document_operations(document)


def test_every_schema_is_valid_json_schema_and_every_ref_resolves():
    document = build_openapi()
    for name, schema in document["components"]["schemas"].items():
        Draft202012Validator.check_schema(schema)
        Draft7Validator.check_schema(schema)  # what fastjsonschema compiles: both dialects agree
        assert name in COMPONENT_SCHEMAS

    refs: list[str] = []

    def collect(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document)
    assert refs
    for ref in refs:
        target = document
        for part in ref.removeprefix("#/").split("/"):
            target = target[part]
        assert isinstance(target, dict)


def test_every_operation_documents_success_and_the_error_shape():
    document = build_openapi()
    error_ref = {"$ref": "#/components/schemas/Error"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert any(code.startswith("2") for code in responses), (path, method)
            for code, response in responses.items():
                if code.startswith(("4", "5")) and "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[1]
                    resolved = document["components"]["responses"][name]
                    assert resolved["content"]["application/json"]["schema"] == error_ref
                    assert name == f"Error{code}"
            assert "405" in responses, (path, method)
            if "{" in path:
                names = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
                assert names == {
                    segment.strip("{}") for segment in path.split("/") if segment.startswith("{")
                }
    assert document["paths"]["/api/orders"]["post"]["responses"]["503"]["$ref"].endswith("Error503")
    assert "Retry-After" in document["components"]["responses"]["Error503"]["headers"]


def test_request_schemas_are_the_servers_plus_the_rules_it_checks_after_them():
    components = build_openapi()["components"]["schemas"]
    assert components["OrderRequest"] is published_schemas.ORDER_REQUEST
    assert components["ChaosRequest"] is published_schemas.CHAOS_REQUEST
    assert components["LoadTestRequest"] is published_schemas.LOAD_TEST_REQUEST
    assert components["Error"] is schemas.ERROR
    # Derived, not copied by hand: every field the server's schema has, with the same keywords or more.
    for published, server in (
        (published_schemas.ORDER_REQUEST, schemas.ORDER_REQUEST),
        (published_schemas.CHAOS_REQUEST, schemas.CHAOS_REQUEST),
        (published_schemas.LOAD_TEST_REQUEST, schemas.LOAD_TEST_REQUEST),
    ):
        assert published["properties"].keys() == server["properties"].keys()
        assert published["required"] == server["required"] and published["additionalProperties"] is False
