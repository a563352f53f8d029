"""Escalation approvals: moving a ticket to another department, raising it to urgent, refunds and compensation.

The approver chain comes from the WeCom org chart; approvers decide in the H5 approvals page (in-app path) or in
WeCom's own approval app (oa/applyevent + sys_approval_change). Decisions drive the ticket through its services.
"""
