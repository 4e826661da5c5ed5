"""Business operations of the CRM core: the only code that writes its models."""
