"""HubSpot CRM nodes (CRM v3 REST over httpx). All HTTP goes through ``transport``."""

from nodes.hubspot import crm  # noqa: F401 - registration by import
