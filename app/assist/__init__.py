"""Assistance on the ticket: suggested category and priority, similar resolved tickets, summary, emotion hint."""
