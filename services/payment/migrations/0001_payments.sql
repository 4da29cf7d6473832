-- One payment per order (the UNIQUE constraint is the last line of defence against a
-- duplicate order.confirmed carrying a new eventId). Amount in hundredths.
CREATE TABLE payments (
    payment_id UUID PRIMARY KEY,
    order_id   TEXT NOT NULL UNIQUE,
    user_id    TEXT NOT NULL,
    amount     BIGINT NOT NULL CHECK (amount >= 0),
    status     TEXT NOT NULL CHECK (status IN ('PAYMENT_WAIT')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
