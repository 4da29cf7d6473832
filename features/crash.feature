@CRASH
Feature: Crashes under load
  Orders keep flowing at the rate the implementation declares (`[capacity] load_rate`, 25 per
  second by default) while a part of the implementation crashes — killed (SIGKILL, `docker kill`,
  the `kill_*` command), not stopped gracefully — and comes back. A burst (`[capacity] burst`, 100
  orders by default) is still arriving when the fault hits: the fault comes once a quarter of them is
  answered, and until it is in place each accepted order of the burst is replaced by a new one
  (a fast implementation would otherwise finish them all in the ~0.4 s a container kill takes),
  so orders are open in every stage, and the load goes on through the outage. Half of the orders
  name both products, their lines in either order, so a crash falls between one line's write and
  the next. Then every order that was accepted still ends exactly once: confirmed with one
  payment for its user of Σ quantity × unitPrice, or cancelled (the stock runs out during the
  load, P2's first, so both paths run and a cancelled order of both takes neither); one push of
  each kind it is due, counted by eventId (a resend with the same eventId is at-least-once
  delivery, allowed); no second or conflicting effect on Kafka; and each product's stock fell
  by exactly the units confirmed. Intake may answer 503 or not at all while the fault is in
  place, nothing else, and once it answers 201 again it keeps doing so.

  These scenarios judge correctness, not speed: the orders have `[capacity] settle_seconds`
  (120 s by default) to settle once the load stops. How fast the implementation recovers and
  whether it sustains its declared rate are requirements of their own (`capacity.feature`);
  each scenario's record carries its recovery figures, measured but not judged here.

  In the reference stacks one PostgreSQL server holds the databases of all three services, so
  killing it takes every service's database away at once. The broker and the database stay
  down for a long outage (`[faults] long_outage_seconds`, 15 s by default) with the load going
  on: longer than any sensible retry budget, as outages in production are, so whatever gives up
  on a record after a few attempts and moves past it shows as an order that never settles.

  @CRASH-1 @serial @must
  Scenario Outline: The <service> Service is killed mid-flight and restarted
    Given the catalogue has product "P1" priced 10.00 with 200 in stock
    And the catalogue has product "P2" priced 2.50 with 100 in stock
    And orders flow at the declared rate for products "P1" and "P2"
    When the load has placed 25 orders
    And the declared burst of orders arrives at once
    And the <service> Service is killed
    And the load has placed 25 more orders
    And the fault is held until 20 orders are open
    And the <service> Service is started again
    And the load has placed 25 more orders
    And the load stops
    Then every order the load placed settles: confirmed with a payment, or cancelled
    And the load was answered 201, or 503 or not at all only while the fault was in place
    And each confirmed order has exactly one payment and no cancelled order has one
    And each order got exactly one push of each kind it is due, counted by eventId
    And no order of the load has a duplicate or conflicting effect on Kafka
    And the stock of "P1" fell by exactly the units confirmed
    And the stock of "P2" fell by exactly the units confirmed

    @needs-kill-order
    Examples: Order
      | service |
      | Order   |

    @needs-kill-product
    Examples: Product
      | service |
      | Product |

    @needs-kill-payment
    Examples: Payment
      | service |
      | Payment |

  @CRASH-2 @serial @must @needs-broker-kill
  Scenario: The Kafka broker is killed mid-flight and restarted
    Given the catalogue has product "P1" priced 10.00 with 200 in stock
    And the catalogue has product "P2" priced 2.50 with 100 in stock
    And orders flow at the declared rate for products "P1" and "P2"
    When the load has placed 25 orders
    And the declared burst of orders arrives at once
    And the Kafka broker is killed
    And the fault lasts a long outage
    And the fault is held until 20 orders are open
    And the Kafka broker is started again
    And the load has placed 25 more orders
    And the load stops
    Then every order the load placed settles: confirmed with a payment, or cancelled
    And the load was answered 201, or 503 or not at all only while the fault was in place
    And each confirmed order has exactly one payment and no cancelled order has one
    And each order got exactly one push of each kind it is due, counted by eventId
    And no order of the load has a duplicate or conflicting effect on Kafka
    And the stock of "P1" fell by exactly the units confirmed
    And the stock of "P2" fell by exactly the units confirmed

  @CRASH-3 @serial @must @needs-db-kill
  Scenario: The PostgreSQL server is killed mid-flight and restarted
    Given the catalogue has product "P1" priced 10.00 with 200 in stock
    And the catalogue has product "P2" priced 2.50 with 100 in stock
    And orders flow at the declared rate for products "P1" and "P2"
    When the load has placed 25 orders
    And the declared burst of orders arrives at once
    And the PostgreSQL server is killed
    And the fault lasts a long outage
    And the fault is held until 20 orders are open
    And the PostgreSQL server is started again
    And the load has placed 25 more orders
    And the load stops
    Then every order the load placed settles: confirmed with a payment, or cancelled
    And the load was answered 201, or 503 or not at all only while the fault was in place
    And each confirmed order has exactly one payment and no cancelled order has one
    And each order got exactly one push of each kind it is due, counted by eventId
    And no order of the load has a duplicate or conflicting effect on Kafka
    And the stock of "P1" fell by exactly the units confirmed
    And the stock of "P2" fell by exactly the units confirmed

  # A zombie: the broker gives the hung member's partitions away while it still holds records it
  # fetched; when it wakes, it finishes them and gets them again. The pause lasts until the
  # service's consumer groups evicted it (its session timeout), at most [faults] zombie_pause_seconds.
  @CRASH-4 @serial @must @needs-pause-product
  Scenario: A Product Service paused past its session timeout makes no second effect once it resumes
    Given the catalogue has product "P1" priced 10.00 with 200 in stock
    And the catalogue has product "P2" priced 2.50 with 100 in stock
    And orders flow at the declared rate for products "P1" and "P2"
    When the load has placed 25 orders
    And the declared burst of orders arrives at once
    And the Product Service is paused past its consumer-group session timeout
    And the fault is held until 20 orders are open
    And the Product Service is resumed
    And the load has placed 25 more orders
    And the load stops
    Then every order the load placed settles: confirmed with a payment, or cancelled
    And the load was answered 201, or 503 or not at all only while the fault was in place
    And each confirmed order has exactly one payment and no cancelled order has one
    And each order got exactly one push of each kind it is due, counted by eventId
    And no order of the load has a duplicate or conflicting effect on Kafka
    And the stock of "P1" fell by exactly the units confirmed
    And the stock of "P2" fell by exactly the units confirmed

  # One service's database alone goes away — its own server crashed — for a long outage while
  # the rest of the stack serves: the intake keeps accepting, the Order Service publishes and
  # forgets (its outbox rows are sent and deleted), so a Product Service that gives up on a
  # record after a few failed attempts and moves past it loses the order for good. Our stacks
  # refuse connections to product_db and end its sessions; an external implementation does it
  # with its kill_db_product / start_db_product commands.
  @CRASH-5 @serial @must @needs-db-kill-product
  Scenario: The Product Service's database is taken away for a long outage and given back
    Given the catalogue has product "P1" priced 10.00 with 200 in stock
    And the catalogue has product "P2" priced 2.50 with 100 in stock
    And orders flow at the declared rate for products "P1" and "P2"
    When the load has placed 25 orders
    And the declared burst of orders arrives at once
    And the Product Service's database is taken away
    And the fault lasts a long outage
    And the fault is held until 20 orders are open
    And the Product Service's database is given back
    And the load has placed 25 more orders
    And the load stops
    Then every order the load placed settles: confirmed with a payment, or cancelled
    And the load was answered 201, or 503 or not at all only while the fault was in place
    And each confirmed order has exactly one payment and no cancelled order has one
    And each order got exactly one push of each kind it is due, counted by eventId
    And no order of the load has a duplicate or conflicting effect on Kafka
    And the stock of "P1" fell by exactly the units confirmed
    And the stock of "P2" fell by exactly the units confirmed
