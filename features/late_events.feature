@LATE
Feature: Late and stray events
  Deduplication by eventId covers a redelivered record; it does not cover a *new* event that
  arrives for an effect already applied, for an order in another state, or for an order no
  service knows. The services' state machines must: a cancelled order stays cancelled, a
  confirmed one stays confirmed (on the cancel path too), an order is confirmed, cancelled and
  paid once, and an event for an order the Order Service never took changes nothing and stalls
  nothing. Every "nothing new" check watches every saga topic and the push sink: an answer on
  another topic than the one a step names is a new effect too. (An order.confirmed for an unknown order is not checked:
  the Payment Service keeps no orders, and order.confirmed is its authority to charge.)

  Background:
    Given the catalogue has product "P1" priced 33.33 with 50 in stock
    And the catalogue has product "P2" priced 19.99 with 1 in stock

  @LATE-1 @must
  Scenario: stock.reserved arriving for an order already cancelled changes nothing
    When user "U1" orders 3 of "P2" from store "S1"
    Then the order becomes "ORDER_CANCELLED"
    When a "stock.reserved" event for the order is published with a new eventId
    Then no "order.confirmed" is published for the order
    And the order becomes "ORDER_CANCELLED"
    And no payment exists for the order

  @LATE-2 @must
  Scenario: a second order.confirmed with a new eventId still makes one payment
    When user "U1" orders 3 of "P1" from store "S1"
    Then a payment in "PAYMENT_WAIT" for 99.99 exists for the order
    When the order's "order.confirmed" event is published again with a new eventId
    Then the order still has exactly one payment
    And user "U1" receives exactly one push of type "PAYMENT_WAIT" for the order

  @LATE-3 @must
  Scenario: a second stock.reserved with a new eventId does not confirm twice
    When user "U1" orders 3 of "P1" from store "S1"
    Then "order.confirmed" is published for the order with total 99.99
    When the order's "stock.reserved" event is published again with a new eventId
    Then nothing new is published on "order.confirmed" for the order
    And user "U1" receives exactly one push of type "ORDER_CONFIRMED" for the order

  @LATE-5 @must
  Scenario: stock.reservation.failed arriving for an order already confirmed changes nothing
    When user "U1" orders 3 of "P1" from store "S1"
    Then a payment in "PAYMENT_WAIT" for 99.99 exists for the order
    When a "stock.reservation.failed" event for the order is published with a new eventId
    Then no "order.cancelled" is published for the order
    And no push of type "ORDER_CANCELLED" arrives for the order
    And the order stays "ORDER_CONFIRMED"
    And the order still has exactly one payment

  @LATE-6 @must
  Scenario: a second stock.reservation.failed with a new eventId does not cancel twice
    When user "U1" orders 3 of "P2" from store "S1"
    Then "order.cancelled" is published for the order with reason "STOCK_UNAVAILABLE"
    When a "stock.reservation.failed" event for the order is published with a new eventId
    Then nothing new is published on "order.cancelled" for the order
    And user "U1" receives exactly one push of type "ORDER_CANCELLED" for the order
    And the order stays "ORDER_CANCELLED"

  @LATE-4 @must
  Scenario Outline: <topic> for an unknown order changes nothing and the partition moves on
    When a "<topic>" event for an unknown order is published on every partition
    And 6 users each order 1 of "P1" at the same time
    Then every order has exactly one payment in "PAYMENT_WAIT" and one push of type "PAYMENT_WAIT"
    And nothing is published or pushed for the unknown orders

    Examples:
      | topic                    |
      | stock.reserved           |
      | stock.reservation.failed |
