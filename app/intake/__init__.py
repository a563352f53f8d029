"""The one intake flow (app.intake.flows): every customer message and every new ticket goes through it."""

from app.intake.flows import (
    Context,
    NewTicket,
    Outcome,
    add_to_ticket,
    choose_ticket,
    customer_ticket,
    handoff,
    join,
    open_ticket,
    receive,
    staff_ticket,
)

__all__ = ["Context", "NewTicket", "Outcome", "add_to_ticket", "choose_ticket", "customer_ticket", "handoff", "join",
           "open_ticket", "receive", "staff_ticket"]
