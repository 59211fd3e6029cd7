"""The ``search`` tool set: ``google_search``, as the weights know it, served by Tavily.

The weights were trained on Google (Serper) results, so Tavily's answer is
reshaped into Google's organic-results JSON. Google-only options Tavily has no
equivalent for (``hl``, ``page``, ``location``) are accepted and ignored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import httpx
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from tavily import AsyncTavilyClient
from tavily import errors as tavily_errors

from mirograph.agents.tools.base import DEDUPE_KEY, ToolContext, on_server

SERVER = "search_and_scrape_webpage"
KEY_ENV = "TAVILY_API_KEY"
BASE_URL_ENV = "TAVILY_API_BASE_URL"
MAX_RESULTS = 20
TIMEOUT_S = 60.0
MISSING_KEY = (
    f"tool set 'search' needs {KEY_ENV} in the environment "
    f"(a Tavily key; {BASE_URL_ENV} may point search at a proxy or a compatible server)"
)

#: Google's ``tbs=qdr:X`` recency filters as Tavily time ranges (an hour is the nearest day).
TIME_RANGES = {"h": "day", "d": "day", "w": "week", "m": "month", "y": "year"}

#: Google ``gl`` country codes for the countries Tavily's ``country`` boost accepts.
COUNTRIES = {
    "af": "afghanistan", "al": "albania", "dz": "algeria", "ad": "andorra", "ao": "angola",
    "ar": "argentina", "am": "armenia", "au": "australia", "at": "austria", "az": "azerbaijan",
    "bs": "bahamas", "bh": "bahrain", "bd": "bangladesh", "bb": "barbados", "by": "belarus",
    "be": "belgium", "bz": "belize", "bj": "benin", "bt": "bhutan", "bo": "bolivia",
    "ba": "bosnia and herzegovina", "bw": "botswana", "br": "brazil", "bn": "brunei",
    "bg": "bulgaria", "bf": "burkina faso", "bi": "burundi", "kh": "cambodia", "cm": "cameroon",
    "ca": "canada", "cv": "cape verde", "cf": "central african republic", "td": "chad",
    "cl": "chile", "cn": "china", "co": "colombia", "km": "comoros", "cg": "congo",
    "cr": "costa rica", "hr": "croatia", "cu": "cuba", "cy": "cyprus", "cz": "czech republic",
    "dk": "denmark", "dj": "djibouti", "do": "dominican republic", "ec": "ecuador", "eg": "egypt",
    "sv": "el salvador", "gq": "equatorial guinea", "er": "eritrea", "ee": "estonia",
    "et": "ethiopia", "fj": "fiji", "fi": "finland", "fr": "france", "ga": "gabon",
    "gm": "gambia", "ge": "georgia", "de": "germany", "gh": "ghana", "gr": "greece",
    "gt": "guatemala", "gn": "guinea", "ht": "haiti", "hn": "honduras", "hu": "hungary",
    "is": "iceland", "in": "india", "id": "indonesia", "ir": "iran", "iq": "iraq",
    "ie": "ireland", "il": "israel", "it": "italy", "jm": "jamaica", "jp": "japan",
    "jo": "jordan", "kz": "kazakhstan", "ke": "kenya", "kw": "kuwait", "kg": "kyrgyzstan",
    "lv": "latvia", "lb": "lebanon", "ls": "lesotho", "lr": "liberia", "ly": "libya",
    "li": "liechtenstein", "lt": "lithuania", "lu": "luxembourg", "mg": "madagascar",
    "mw": "malawi", "my": "malaysia", "mv": "maldives", "ml": "mali", "mt": "malta",
    "mr": "mauritania", "mu": "mauritius", "mx": "mexico", "md": "moldova", "mc": "monaco",
    "mn": "mongolia", "me": "montenegro", "ma": "morocco", "mz": "mozambique", "mm": "myanmar",
    "na": "namibia", "np": "nepal", "nl": "netherlands", "nz": "new zealand", "ni": "nicaragua",
    "ne": "niger", "ng": "nigeria", "kp": "north korea", "mk": "north macedonia", "no": "norway",
    "om": "oman", "pk": "pakistan", "pa": "panama", "pg": "papua new guinea", "py": "paraguay",
    "pe": "peru", "ph": "philippines", "pl": "poland", "pt": "portugal", "qa": "qatar",
    "ro": "romania", "ru": "russia", "rw": "rwanda", "sa": "saudi arabia", "sn": "senegal",
    "rs": "serbia", "sg": "singapore", "sk": "slovakia", "si": "slovenia", "so": "somalia",
    "za": "south africa", "kr": "south korea", "ss": "south sudan", "es": "spain",
    "lk": "sri lanka", "sd": "sudan", "se": "sweden", "ch": "switzerland", "sy": "syria",
    "tw": "taiwan", "tj": "tajikistan", "tz": "tanzania", "th": "thailand", "tg": "togo",
    "tt": "trinidad and tobago", "tn": "tunisia", "tr": "turkey", "tm": "turkmenistan",
    "ug": "uganda", "ua": "ukraine", "ae": "united arab emirates", "gb": "united kingdom",
    "uk": "united kingdom", "us": "united states", "uy": "uruguay", "uz": "uzbekistan",
    "ve": "venezuela", "vn": "vietnam", "ye": "yemen", "zm": "zambia", "zw": "zimbabwe",
}  # fmt: skip


def check_env(env: Mapping[str, str]) -> str | None:
    """Why the set cannot work in ``env``, or None; run when a flow is validated."""
    return None if env.get(KEY_ENV) else MISSING_KEY


def search_args(q: str, gl: str, num: int, tbs: str | None) -> dict[str, Any]:
    """Google-style arguments as keyword arguments of ``AsyncTavilyClient.search``."""
    args: dict[str, Any] = {"query": q, "max_results": max(1, min(num, MAX_RESULTS))}
    if tbs and tbs.startswith("qdr:") and tbs[4:5] in TIME_RANGES:
        args["time_range"] = TIME_RANGES[tbs[4:5]]
    country = COUNTRIES.get(gl.strip().lower())
    if country:
        args["country"] = country
    return args


def organic(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tavily results as Google organic results, numbered from 1."""
    rows = []
    for position, item in enumerate(results, start=1):
        row = {
            "title": item.get("title") or "",
            "link": item.get("url") or "",
            "snippet": item.get("content") or "",
            "position": position,
        }
        if item.get("published_date"):
            row["date"] = item["published_date"]
        rows.append(row)
    return rows


def make_tools(ctx: ToolContext, *, timeout_s: float = TIMEOUT_S) -> list[BaseTool]:
    del ctx  # searching keeps nothing per run

    async def google_search(
        q: str,
        gl: str = "us",
        hl: str = "en",
        num: int = 10,
        tbs: str | None = None,
        page: int = 1,
        location: str | None = None,
    ) -> str:
        """Search the web (Google-style).

        Args:
            q: The search query.
            gl: Two-letter country code whose results are preferred, e.g. "us", "de".
            hl: Two-letter interface language code, e.g. "en".
            num: How many results to return (at most 20).
            tbs: Time filter: "qdr:d" past day, "qdr:w" week, "qdr:m" month, "qdr:y" year.
            page: Results page number.
            location: Where the search is made from, e.g. "Berlin, Germany".

        Returns:
            JSON with "searchParameters" (the search as made) and "organic", the results
            best first, each with title, link, snippet, position and, when known, date.
            An empty "organic" list means nothing matched. A search that fails (no API
            key, rate limit, timeout) gives an error message saying why.
        """
        key = os.environ.get(KEY_ENV)
        if not key:
            raise ToolException(MISSING_KEY)
        response = await _search(key, search_args(q, gl, num, tbs), timeout_s)
        parameters: dict[str, Any] = {"q": q, "gl": gl, "hl": hl, "num": num, "page": page}
        parameters.update({k: v for k, v in (("tbs", tbs), ("location", location)) if v})
        text = json.dumps(
            {"searchParameters": parameters, "organic": organic(response.get("results") or [])},
            ensure_ascii=False,
        )
        return text.replace(key, "***")

    tool = StructuredTool.from_function(
        coroutine=google_search, handle_tool_error=False, parse_docstring=True
    )
    tool.metadata = {DEDUPE_KEY: ["q"]}
    return [on_server(tool, SERVER)]


async def _search(key: str, args: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """One Tavily search; every failure is a one-line ``ToolException`` without the key."""
    base_url = os.environ.get(BASE_URL_ENV) or None
    try:
        async with AsyncTavilyClient(api_key=key, api_base_url=base_url) as client:
            response = await client.search(**args, timeout=timeout_s)
    except Exception as exc:
        raise ToolException(_explain(exc).replace(key, "***")) from None
    if not isinstance(response, dict):
        raise ToolException(f"Tavily answered with a {type(response).__name__}, not a JSON object")
    return response


async def extract_page(url: str, timeout_s: float = TIMEOUT_S) -> str:
    """The text Tavily's extract endpoint reads from ``url`` (scrape's ``fetcher: tavily``)."""
    key = os.environ.get(KEY_ENV)
    if not key:
        raise ToolException(MISSING_KEY)
    base_url = os.environ.get(BASE_URL_ENV) or None
    try:
        async with AsyncTavilyClient(api_key=key, api_base_url=base_url) as client:
            response = await client.extract(urls=[url], format="text", timeout=timeout_s)
    except Exception as exc:
        raise ToolException(_explain(exc, "extract").replace(key, "***")) from None
    for result in response.get("results") or []:
        if isinstance(result, dict) and isinstance(result.get("raw_content"), str):
            return result["raw_content"]
    failed = [f for f in response.get("failed_results") or [] if isinstance(f, dict)]
    reason = failed[0].get("error") if failed else "no content"
    raise ToolException(f"Tavily could not extract {url}: {reason}".replace(key, "***"))


def _explain(exc: Exception, action: str = "search") -> str:
    detail = " ".join(str(exc).split())[:300]
    suffix = f": {detail}" if detail else ""
    if isinstance(exc, tavily_errors.InvalidAPIKeyError):
        return f"Tavily rejected the API key (HTTP 401); set {KEY_ENV}"
    if isinstance(exc, tavily_errors.UsageLimitExceededError):
        return f"Tavily rate or usage limit reached (HTTP 429); wait before the next {action}"
    if isinstance(exc, tavily_errors.ForbiddenError):
        return f"Tavily refused the {action} (plan or key limit){suffix}"
    if isinstance(exc, tavily_errors.BadRequestError):
        return f"Tavily rejected the {action} as invalid (HTTP 400){suffix}"
    if isinstance(exc, tavily_errors.TimeoutError):
        return f"Tavily did not answer in time{suffix}"
    if isinstance(exc, httpx.HTTPStatusError):
        code = exc.response.status_code
        return f"Tavily {action} failed with HTTP {code}; try again later"
    if isinstance(exc, httpx.HTTPError):
        return f"Tavily could not be reached: {type(exc).__name__}{suffix}"
    if isinstance(exc, ValueError):  # a body that is not JSON
        return f"Tavily answered with something that is not JSON{suffix}"
    return f"Tavily {action} failed: {type(exc).__name__}{suffix}"
