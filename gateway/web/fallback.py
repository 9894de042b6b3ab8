"""Any other path under /app: a 404 page in the site's layout (not the API's JSON)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from gateway.errors import ApiError
from gateway.web.pages import WEB_PREFIX, WebRoute

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.api_route(f"{WEB_PREFIX}/{{rest:path}}", methods=["GET", "POST"])
async def not_found(rest: str) -> Response:
    raise ApiError(404, "not_found", "There is no such page")
