"""The CRM layer: contacts for the IVR's identification and the agent's screen-pop.

``model`` (pure: Contact, PIN results, the ``Crm`` protocol, phone numbers),
``store`` (built-in contacts in PostgreSQL), ``memory`` (in-process, for tests
and the offline simulator), ``http`` (an external CRM over HTTP with cache and
fallback), ``csv_import``, ``ivr_lookup`` (answers the IVR's ``Lookup``
requests) and ``webhooks`` (signed outgoing call events). See docs/crm.md.
"""
