"""Identity providers for tests and `SSO_DEMO=1 make run`: a real OpenID Connect
provider (authlib) and a real SAML IdP (pysaml2), each a process on loopback.
Never part of a production deployment: their packages are development ones."""
