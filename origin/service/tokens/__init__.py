"""Token formats for content key authorization: JWT and SWT verification, and signing."""
