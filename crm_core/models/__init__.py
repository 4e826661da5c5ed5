from .activities import USER_ACTIVITY_TYPES, Activity, ActivityStatus, ActivityType
from .consent import ConsentRecord
from .contacts import (
    Channel,
    Contact,
    ContactAddress,
    ContactEmail,
    ContactKind,
    ContactPhone,
    LocationType,
    PhoneType,
)
from .customfields import CustomField, CustomFieldValue, FieldType
from .duplicates import DuplicateStatus, PossibleDuplicate
from .groups import Group, GroupMembership, Tag
from .relationships import Relationship, RelationshipType

__all__ = [
    "Activity",
    "ActivityStatus",
    "ActivityType",
    "Channel",
    "ConsentRecord",
    "Contact",
    "ContactAddress",
    "ContactEmail",
    "ContactKind",
    "ContactPhone",
    "CustomField",
    "CustomFieldValue",
    "DuplicateStatus",
    "FieldType",
    "Group",
    "GroupMembership",
    "LocationType",
    "PhoneType",
    "PossibleDuplicate",
    "Relationship",
    "RelationshipType",
    "Tag",
    "USER_ACTIVITY_TYPES",
]
