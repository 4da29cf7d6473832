-- Orders and their lines. Money is stored in hundredths (BIGINT) to match the contract's
-- decimal(10, 2) exactly.
CREATE TABLE orders (
    order_id            UUID PRIMARY KEY,
    user_id             TEXT NOT NULL,
    store_id            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('ORDER_CREATED', 'ORDER_CONFIRMED', 'ORDER_CANCELLED')),
    total_amount        BIGINT NOT NULL CHECK (total_amount >= 0),
    cancellation_reason TEXT,
    failure_detail      TEXT,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE order_items (
    order_id   UUID NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    line_no    INT NOT NULL,
    product_id TEXT NOT NULL,
    quantity   INT NOT NULL CHECK (quantity > 0),
    unit_price BIGINT NOT NULL CHECK (unit_price >= 0),
    PRIMARY KEY (order_id, line_no)
);
