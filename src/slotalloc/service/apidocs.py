"""The API's own documentation: the OpenAPI schema, and Swagger UI served from local files.

``/docs`` loads nothing from another host (the city's network is closed):
Swagger UI's files come from the installed ``fastapi-offline`` wheel and the
page's Content-Security-Policy lets the browser load from this origin only.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import logging
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi import Request as HTTPRequest
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_ASSETS", "install_docs", "openapi_schema"]

# One logger for the server, whichever of its modules writes the line.
log = logging.getLogger("slotalloc.service.server")


#: Where the Swagger UI assets are mounted (``fastapi-offline`` ships them).
DOCS_ASSETS = "/docs/assets"


def _swagger_assets() -> Path | None:
    """The directory of Swagger UI's JS and CSS in the installed ``fastapi-offline``, or None.

    Found without importing the package (only its files are used). It ships
    Swagger UI 5, which renders OpenAPI 3.1; ``swagger-ui-bundle`` (4.15)
    shows FastAPI's 3.1 schema as "not a valid version".
    """
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "static"
    if not all((path / f).is_file() for f in ("swagger-ui-bundle.js", "swagger-ui.css")):
        return None
    return path


def install_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from local files only (the city's network is closed)."""
    assets = _swagger_assets()
    if assets is None:
        # No CDN fallback: without the files there is no /docs (the schema stays).
        log.warning("Swagger UI files not installed (pip install fastapi-offline): no /docs")
        return
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title}: API"

    @app.get("/docs", include_in_schema=False)
    def docs(request: HTTPRequest) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=title,
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # Swagger UI would otherwise send the schema to an online validator, and
            # keep a token typed into "Authorize" in the browser's storage.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )
        page.headers["Content-Security-Policy"] = _docs_csp(bytes(page.body))
        return page


def _docs_csp(html: bytes) -> str:
    """A policy letting the docs page load from this origin only (its inline script by hash).

    The browser then enforces what the page promises: nothing from another host,
    even if a future Swagger UI tried (fonts, a validator badge, a CDN).
    """
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in re.finditer(rb"<script>(.*?)</script>", html, flags=re.DOTALL)
    )
    return (
        "default-src 'none'; connect-src 'self'; img-src 'self' data:; "
        f"style-src 'self' 'unsafe-inline'; script-src 'self' {hashes}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI schema: each operation lists exactly the statuses its route declares.

    FastAPI adds a 422 to every operation with a parameter, even one whose
    parameters cannot be invalid (a path id, an optional header); the
    declared statuses are the real ones, so the rest are removed. The bearer
    scheme the operations name is added too.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        declared = {str(route.status_code or 200)} | {str(code) for code in route.responses}
        for method in route.methods or ():
            op = schema["paths"][route.path_format][method.lower()]
            for code in set(op["responses"]) - declared:
                del op["responses"][code]
    components = schema.setdefault("components", {})
    text = json.dumps(schema["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{name}"' not in text:
            components.get("schemas", {}).pop(name, None)
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "an operator or booking token of the auth file",
        }
    }
    app.openapi_schema = schema
    return schema
