"""PowerMailChimp: marketing-list members pushed from Dynamics 365 to Mailchimp (nothing kept), and Mailchimp's
events and campaign activity back as records of a `mailchimpevent` dataset."""
