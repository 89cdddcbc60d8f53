"""PowerAttachment: attachments moved from Dynamics 365 into the customer's SharePoint, never kept by PackCloud."""
