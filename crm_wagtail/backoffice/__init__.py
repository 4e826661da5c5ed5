"""The staff back office: Wagtail admin viewsets over the CRM core.

Every write goes through a ``crm_core.services`` function, so the admin
records the same history (actor, source, changed fields) as the API,
imports and forms do.
"""
