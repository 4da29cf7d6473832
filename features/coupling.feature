@COUPLING @faults
Feature: Loose coupling
  Order intake stays up while the Product Service is down; the order completes once it is
  back, because the event waits in Kafka.

  @COUPLING-1 @serial
  Scenario: Intake works while the Product Service is down
    Given the catalogue has product "P1" priced 15000.00 with 50 in stock
    And the Product Service is down
    When user "U1" orders 1 of "P1" from store "S1"
    Then the order is accepted within the intake budget
    And the order reads back with status "ORDER_CREATED" or later
    When the Product Service is started again
    Then the order becomes "ORDER_CONFIRMED"
    And a payment in "PAYMENT_WAIT" for 15000.00 exists for the order

  @COUPLING-2 @serial
  Scenario: Orders confirmed while the Payment Service is down each get one payment once it is back
    Given the catalogue has product "P1" priced 1000.00 with 100 in stock
    And the Payment Service is down
    When 10 users each order 1 of "P1" at the same time
    Then every order ends "ORDER_CONFIRMED"
    And no push of type "PAYMENT_WAIT" arrives for these orders
    When the Payment Service is started again
    Then every order has exactly one payment in "PAYMENT_WAIT" and one push of type "PAYMENT_WAIT"
