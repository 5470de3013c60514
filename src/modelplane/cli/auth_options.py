"""The authentication options ``modelplane up`` and ``modelplane gateway`` share."""

from __future__ import annotations

from typing import Annotated

import typer

from modelplane.cli.errors import EXIT_USAGE, CliError
from modelplane.security.tokens import OidcSettings, TokenVerifier, group_grants

OidcIssuer = Annotated[
    str | None, typer.Option(help="Accept JWT bearer tokens from this OIDC issuer.")
]
OidcAudience = Annotated[str, typer.Option(help="The audience (aud) those tokens must name.")]
OidcJwks = Annotated[
    str | None, typer.Option(help="The issuer's signing keys: a JWKS file or URL.")
]
OidcAlgorithm = Annotated[
    list[str] | None,
    typer.Option(help="An allowed signing algorithm (asymmetric only); repeatable."),
]
OidcGroupsClaim = Annotated[str, typer.Option(help="The claim that lists the subject's groups.")]
OidcGroup = Annotated[
    list[str] | None,
    typer.Option(
        help="GROUP=NAMESPACE:ROLE: members of GROUP get ROLE there (* for every namespace); "
        "repeatable."
    ),
]


def oidc_verifier(
    issuer: str | None,
    audience: str,
    jwks: str | None,
    algorithms: list[str] | None,
    groups_claim: str,
    groups: list[str] | None,
) -> TokenVerifier | None:
    """The verifier the ``--oidc-*`` options describe; None when they are not given."""
    if not issuer and not jwks:
        return None
    if not issuer or not jwks:
        raise CliError("--oidc-issuer and --oidc-jwks go together", exit_code=EXIT_USAGE)
    try:
        grants = group_grants(groups or [])
        settings = OidcSettings(
            issuer, audience, jwks, tuple(algorithms or ("RS256", "ES256")), groups_claim, grants
        )
        return TokenVerifier(settings)
    except (ValueError, OSError) as exc:
        raise CliError(f"OIDC settings: {exc}", exit_code=EXIT_USAGE) from exc
