@FLOW
Feature: Order creation, happy path
  The seed (order-creation-success): the client gets ORDER_CREATED at once; the Product
  Service reserves stock and publishes stock.reserved; the Order Service confirms, publishes
  order.confirmed and pushes "주문이 확정되었습니다"; the Payment Service creates a payment in
  PAYMENT_WAIT and pushes "결제를 진행해주세요".

  Background:
    Given the catalogue has product "P1" priced 15000.00 with 50 in stock
    And the catalogue has product "P2" priced 2500.50 with 10 in stock

  @FLOW-1 @must
  Scenario: Intake answers ORDER_CREATED without waiting for stock
    When user "U1" orders 2 of "P1" and 1 of "P2" from store "S1"
    Then the order is accepted with status "ORDER_CREATED" and message "주문이 접수되었습니다"
    And the order reads back with status "ORDER_CREATED" or later
    And the order's Location header points at the order
    And the order reads back for user "U1" at store "S1" with the ordered lines and total 32500.50

  @FLOW-2 @must
  Scenario: order.created carries the request, keyed by orderId
    When user "U1" orders 2 of "P1" and 1 of "P2" from store "S1"
    Then "order.created" is published for the order
    And the "order.created" event carries user "U1", store "S1", the ordered lines and total 32500.50

  @FLOW-3 @must
  Scenario: Stock is reserved and stock.reserved lists what is left
    When user "U1" orders 2 of "P1" and 1 of "P2" from store "S1"
    Then "stock.reserved" is published for the order
    And the "stock.reserved" event reserves 2 of "P1" leaving 48 and 1 of "P2" leaving 9
    And product "P1" has 48 in stock
    And product "P2" has 9 in stock

  @FLOW-4 @must
  Scenario: The order is confirmed with its total and the buyer is told
    When user "U1" orders 2 of "P1" and 1 of "P2" from store "S1"
    Then the order becomes "ORDER_CONFIRMED"
    And "order.confirmed" is published for the order with total 32500.50
    And user "U1" receives the push "주문이 확정되었습니다" of type "ORDER_CONFIRMED" for the order
    And the "ORDER_CONFIRMED" push carries the eventId of the order's "order.confirmed" event

  @FLOW-5 @must
  Scenario: A payment waits for the buyer — the saga's final state
    When user "U1" orders 2 of "P1" and 1 of "P2" from store "S1"
    Then a payment in "PAYMENT_WAIT" for 32500.50 exists for the order
    And user "U1" receives the push "결제를 진행해주세요" of type "PAYMENT_WAIT" for the order
    And the payment is for the order, user "U1" and amount 32500.50
    And the "PAYMENT_WAIT" push carries the eventId of the order's "order.confirmed" event
    And the order's saga ends with exactly one of each: "order.created", "stock.reserved", "order.confirmed"
    And the order has exactly one payment and one push of each type

  @FLOW-6 @must
  Scenario: Amounts keep their cents where binary floating point cannot hold them
    Given the catalogue has product "C1" priced 33.33 with 10 in stock
    And the catalogue has product "C2" priced 0.10 with 10 in stock
    And the catalogue has product "C3" priced 19.99 with 10 in stock
    When user "U1" orders 3 of "C1" and 1 of "C2" and 1 of "C3" from store "S1"
    Then the order is accepted with status "ORDER_CREATED" and message "주문이 접수되었습니다"
    And the order's Location header points at the order
    And the order reads back for user "U1" at store "S1" with the ordered lines and total 120.08
    And the "order.created" event carries user "U1", store "S1", the ordered lines and total 120.08
    And the order becomes "ORDER_CONFIRMED"
    And "order.confirmed" is published for the order with total 120.08
    And the payment is for the order, user "U1" and amount 120.08
    And the "ORDER_CONFIRMED" push carries the eventId of the order's "order.confirmed" event
    And the "PAYMENT_WAIT" push carries the eventId of the order's "order.confirmed" event
