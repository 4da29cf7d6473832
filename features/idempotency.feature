@IDEMP
Feature: Idempotent handlers
  Every handler deduplicates by eventId: a redelivered event (same eventId, new offset)
  changes nothing and publishes nothing new.

  Background:
    Given the catalogue has product "P1" priced 15000.00 with 50 in stock

  @IDEMP-1 @must
  Scenario: order.created delivered twice reserves once
    When user "U1" orders 2 of "P1" from store "S1"
    And the order's "order.created" event is delivered again
    And the order's "order.created" event is delivered again
    Then a payment in "PAYMENT_WAIT" for 30000.00 exists for the order
    And nothing new is published on "stock.reserved" for the order
    And product "P1" has 48 in stock

  @IDEMP-2 @must
  Scenario: stock.reserved delivered twice confirms once and pushes once
    When user "U1" orders 2 of "P1" from store "S1"
    Then "order.confirmed" is published for the order with total 30000.00
    When the order's "stock.reserved" event is delivered again
    Then nothing new is published on "order.confirmed" for the order
    And user "U1" receives exactly one push of type "ORDER_CONFIRMED" for the order

  @IDEMP-3 @must
  Scenario: order.confirmed delivered twice creates one payment and one push
    When user "U1" orders 2 of "P1" from store "S1"
    Then a payment in "PAYMENT_WAIT" for 30000.00 exists for the order
    When the order's "order.confirmed" event is delivered again
    Then the order still has exactly one payment
    And user "U1" receives exactly one push of type "PAYMENT_WAIT" for the order

  @IDEMP-4 @must
  Scenario: stock.reservation.failed delivered twice cancels once and pushes once
    Given the catalogue has product "P2" priced 19.99 with 1 in stock
    When user "U1" orders 5 of "P2" from store "S1"
    Then "order.cancelled" is published for the order with reason "STOCK_UNAVAILABLE"
    When the order's "stock.reservation.failed" event is delivered again
    Then nothing new is published on "order.cancelled" for the order
    And user "U1" receives exactly one push of type "ORDER_CANCELLED" for the order
    And the order becomes "ORDER_CANCELLED"

  # Redelivery after a restart: what a service remembers of the events it handled must
  # survive a restart (a deduplication kept in memory fails these).

  @IDEMP-5 @needs-stop-product @serial @must
  Scenario: order.created delivered again after the Product Service restarted reserves nothing more
    When user "U1" orders 2 of "P1" from store "S1"
    Then a payment in "PAYMENT_WAIT" for 30000.00 exists for the order
    When the Product Service is restarted
    And the order's "order.created" event is delivered again
    Then nothing new is published on "stock.reserved" for the order
    And product "P1" has 48 in stock

  @IDEMP-6 @needs-stop-order @serial @must
  Scenario: stock.reserved delivered again after the Order Service restarted confirms nothing more
    When user "U1" orders 2 of "P1" from store "S1"
    Then a payment in "PAYMENT_WAIT" for 30000.00 exists for the order
    When the Order Service is restarted
    And the order's "stock.reserved" event is delivered again
    Then nothing new is published on "order.confirmed" for the order
    And user "U1" receives exactly one push of type "ORDER_CONFIRMED" for the order

  @IDEMP-7 @needs-stop-payment @serial @must
  Scenario: order.confirmed delivered again after the Payment Service restarted pays nothing more
    When user "U1" orders 2 of "P1" from store "S1"
    Then a payment in "PAYMENT_WAIT" for 30000.00 exists for the order
    When the Payment Service is restarted
    And the order's "order.confirmed" event is delivered again
    Then the order still has exactly one payment
    And user "U1" receives exactly one push of type "PAYMENT_WAIT" for the order
