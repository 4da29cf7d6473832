-- The catalogue with its stock, and one reservation per order. Prices in hundredths.
CREATE TABLE products (
    product_id TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    price      BIGINT NOT NULL CHECK (price >= 0),
    stock      INT NOT NULL CHECK (stock >= 0), -- never negative, enforced here too
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE reservations (
    order_id    TEXT PRIMARY KEY,
    items       JSONB NOT NULL,
    reserved_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
