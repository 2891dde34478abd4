"""Push: event streams, batch status, subscriptions, webhooks, and the capabilities that
advertise them."""
