@COUPLING
Feature: Loose coupling
  Order intake stays up while the Product Service is down; the order completes once it is
  back, because the event waits in Kafka. The same holds when a service hangs (paused, not
  stopped) and when the broker itself restarts: the outbox keeps what was accepted.

  @COUPLING-1 @needs-stop-product @serial @must
  Scenario: Intake works while the Product Service is down
    Given the catalogue has product "P1" priced 15000.00 with 50 in stock
    And the Product Service is down
    When user "U1" orders 1 of "P1" from store "S1"
    Then the order is accepted within the intake budget
    And the order reads back with status "ORDER_CREATED" or later
    When the Product Service is started again
    Then the order becomes "ORDER_CONFIRMED"
    And a payment in "PAYMENT_WAIT" for 15000.00 exists for the order

  @COUPLING-2 @needs-stop-payment @serial @must
  Scenario: Orders confirmed while the Payment Service is down each get one payment once it is back
    Given the catalogue has product "P1" priced 1000.00 with 100 in stock
    And the Payment Service is down
    When 10 users each order 1 of "P1" at the same time
    Then every order ends "ORDER_CONFIRMED"
    And no push of type "PAYMENT_WAIT" arrives for these orders
    When the Payment Service is started again
    Then every order has exactly one payment in "PAYMENT_WAIT" and one push of type "PAYMENT_WAIT"

  @COUPLING-3 @needs-pause-product @serial @must
  Scenario: A hung Product Service holds the order back without losing it
    Given the catalogue has product "P1" priced 15000.00 with 50 in stock
    And the Product Service is paused
    When user "U1" orders 1 of "P1" from store "S1"
    Then the order is accepted within the intake budget
    And no "stock.reserved" is published for the order
    When the Product Service is resumed
    Then the order becomes "ORDER_CONFIRMED"
    And user "U1" receives the push "주문이 확정되었습니다" of type "ORDER_CONFIRMED" for the order
    And user "U1" receives the push "결제를 진행해주세요" of type "PAYMENT_WAIT" for the order
    And the order has exactly one payment and one push of each type

  @COUPLING-4 @needs-broker-stop @serial @must
  Scenario: Orders accepted while the broker is down complete exactly once after it restarts
    Given the catalogue has product "P1" priced 1000.00 with 100 in stock
    And the Kafka broker is stopped
    When 5 users each order 1 of "P1" at the same time
    And the Kafka broker is started again
    Then every order has exactly one payment in "PAYMENT_WAIT" and one push of type "PAYMENT_WAIT"
    And every order ends "ORDER_CONFIRMED"
