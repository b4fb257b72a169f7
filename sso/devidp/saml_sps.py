"""The service providers the dev SAML IdP trusts: SP metadata from files, from
URLs (fetched at the first AuthnRequest, refetched when an SP is unknown, so the
SP may start after the IdP), or an entity ID and ACS URL given on the command
line. Everything lands in pysaml2's MetadataStore, keyed by its source."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr  # nosec B406 (escapes text we write; parses nothing)

import httpx
from saml2 import BINDING_HTTP_POST, SAMLError
from saml2.mdstore import InMemoryMetaData, MetadataStore

logger = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 10.0


def loopback_client(url: str) -> httpx.Client:
    """Proxy settings apply to remote metadata URLs, not to loopback ones."""
    host = urlsplit(url).hostname or ""
    loopback = host in ("127.0.0.1", "localhost", "::1")
    return httpx.Client(timeout=FETCH_TIMEOUT_S, trust_env=not loopback)


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def minimal_sp_metadata(entity_id: str, acs_url: str) -> str:
    """SP metadata with one HTTP-POST AssertionConsumerService, for --sp."""
    return (
        '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata"'
        f" entityID={quoteattr(entity_id)}>"
        "<md:SPSSODescriptor"
        ' protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"'
        ' WantAssertionsSigned="true">'
        f'<md:AssertionConsumerService Binding="{BINDING_HTTP_POST}"'
        f' Location={quoteattr(acs_url)} index="0"/>'
        "</md:SPSSODescriptor></md:EntityDescriptor>"
    )


def parse_sp_option(value: str) -> tuple[str, str]:
    """ "ENTITY_ID=ACS_URL" -> (entity_id, acs_url); the entity ID may hold '='
    only before the ACS URL's scheme, so split at the last '=http'."""
    index = value.rfind("=http")
    if index <= 0:
        raise ValueError(f"--sp wants ENTITY_ID=ACS_URL, got {value!r}")
    return value[:index], value[index + 1 :]


class ServiceProviders:
    """SP metadata sources loaded into a pysaml2 MetadataStore."""

    def __init__(
        self,
        store: MetadataStore,
        sources: list[str],
        trusted: dict[str, str] | None = None,
    ) -> None:
        self._store = store
        self._urls = [source for source in sources if is_url(source)]
        self._fetched_once = False
        self._lock = threading.Lock()
        for source in sources:
            if not is_url(source):
                self._load(f"file:{source}", Path(source).read_text(encoding="utf-8"))
        for entity_id, acs_url in (trusted or {}).items():
            self._load(f"sp:{entity_id}", minimal_sp_metadata(entity_id, acs_url))

    def _load(self, key: str, xml: str) -> None:
        metadata = InMemoryMetaData(self._store.attrc, xml)
        metadata.load()
        self._store.metadata[key] = metadata
        logger.info("SP metadata from %s: %s", key, ", ".join(metadata.keys()))

    def _fetch_urls(self) -> None:
        for url in self._urls:
            try:
                with loopback_client(url) as client:
                    response = client.get(url)
                response.raise_for_status()
                self._load(f"url:{url}", response.text)
            except (httpx.HTTPError, SAMLError, ValueError, SyntaxError) as error:
                logger.warning("SP metadata from %s failed: %s", url, error)
        self._fetched_once = True

    def known(self, entity_id: str) -> bool:
        return entity_id in self._store.keys()

    def ensure_known(self, entity_id: str) -> bool:
        """Whether the SP is trusted, fetching URL metadata on first use and
        refetching it when the SP is unknown."""
        with self._lock:
            if not self._fetched_once or not self.known(entity_id):
                if self._urls:
                    self._fetch_urls()
            return self.known(entity_id)
