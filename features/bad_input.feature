@INPUT
Feature: Bad input
  A malformed request gets a 4xx with an RFC 9457 problem body (type, title, status, detail)
  and changes nothing: past every limit of the contract — more than 10000 units, a third
  decimal, a total over 99,999,999.99 (on one line or summed over several), more than 100
  lines, an unknown field, a body that is not application/json. At the limits an order is
  accepted and completes: an implementation stricter than the contract refuses real orders. A
  poison record does not stall its partition.

  @INPUT-1 @must
  Scenario Outline: A malformed order request is refused and nothing is published
    When user "U-bad" posts the order body <body>
    Then the response status is <status> with a problem body
    And nothing is published on "order.created" for user "U-bad"

    Examples:
      | body                                                                                    | status |
      | {"storeId": "S1", "items": [                                                            | 400    |
      | {"storeId": "S1", "items": []}                                                          | 422    |
      | {"storeId": "S1", "items": [{"productId": "P", "quantity": 0, "unitPrice": 10}]}        | 422    |
      | {"storeId": "S1", "items": [{"productId": "P", "quantity": -3, "unitPrice": 10}]}       | 422    |
      | {"storeId": "S1", "items": [{"productId": "P", "quantity": 99999999, "unitPrice": 10}]} | 422    |
      | {"storeId": "S1", "items": [{"productId": "P", "quantity": 1, "unitPrice": -5}]}        | 422    |
      | {"storeId": "S1", "items": [{"productId": "P", "quantity": 1, "unitPrice": "ten"}]}     | 422    |
      | {"items": [{"productId": "P", "quantity": 1, "unitPrice": 10}]}                         | 422    |
      | "just a string"                                                                         | 422    |
      | {"storeId": "S1", "items": [{"productId": "P", "quantity": 10001, "unitPrice": 1}]}     | 422    |
      | {"storeId": "S1", "items": [{"productId": "P", "quantity": 1, "unitPrice": 10.005}]}    | 422    |
      | {"storeId": "S1", "items": [{"productId": "P", "quantity": 1, "unitPrice": 0}]}         | 422    |
      | {"storeId": "S1", "items": [{"productId": "P", "quantity": 10000, "unitPrice": 10000.00}]} | 422 |
      | {"storeId": "S1", "items": [{"productId": "P", "quantity": 1, "unitPrice": 60000000}, {"productId": "Q", "quantity": 1, "unitPrice": 40000000}]} | 422 |
      | {"storeId": "S1", "items": [{"productId": "P", "quantity": 1, "unitPrice": 10}], "coupon": "FREE"} | 422 |
      | {"storeId": "S1", "items": [{"productId": "P", "quantity": 1, "unitPrice": 10, "discount": 1}]} | 422 |

  @INPUT-2 @must
  Scenario: An order without X-User-Id is refused
    When an order is posted without the X-User-Id header
    Then the response status is 400 with a problem body

  @INPUT-3 @must
  Scenario: An oversized body is refused
    When user "U-bad" posts an order body of 1 MiB
    Then the response status is 413 with a problem body
    And nothing is published on "order.created" for user "U-bad"

  @INPUT-4 @must
  Scenario: A poison record on order.created does not stall the saga
    Given the catalogue has product "P1" priced 15000.00 with 50 in stock
    When a poison record is published on "order.created"
    And user "U1" orders 1 of "P1" from store "S1"
    Then a payment in "PAYMENT_WAIT" for 15000.00 exists for the order

  @INPUT-5 @needs-dead-letters @should
  Scenario: A poison record lands in the dead-letter topic with its origin
    When a poison record is published on "order.created"
    Then the poison record appears on the dead-letter topic of "order.created" with its original topic, partition and offset

  @INPUT-6 @must
  Scenario: More than 100 lines are refused
    When user "U-bad" posts an order of 101 lines
    Then the response status is 422 with a problem body
    And nothing is published on "order.created" for user "U-bad"

  @INPUT-7 @must
  Scenario: A body that is not sent as application/json is refused
    When user "U-bad" posts a well-formed order as "text/plain"
    Then the response status is 415 with a problem body
    And nothing is published on "order.created" for user "U-bad"

  @INPUT-8 @must
  Scenario Outline: An order at the contract's limits is accepted and completes
    Given the catalogue has product "P1" priced <price> with <stock> in stock
    When user "U1" orders <quantity> of "P1" from store "S1"
    Then the order is accepted with status "ORDER_CREATED" and message "주문이 접수되었습니다"
    And the order becomes "ORDER_CONFIRMED"
    And the payment is for the order, user "U1" and amount <total>

    Examples:
      | price       | stock | quantity | total       |
      | 0.01        | 10000 | 10000    | 100.00      |
      | 99999999.99 | 1     | 1        | 99999999.99 |

  @INPUT-9 @must
  Scenario: An order of 100 lines is accepted and completes
    Given the catalogue has products "L1" to "L100" priced 1.00 with 1 in stock
    When user "U1" orders 1 of each of "L1" to "L100" at store "S1"
    Then the order is accepted with status "ORDER_CREATED" and message "주문이 접수되었습니다"
    And the order becomes "ORDER_CONFIRMED"
    And the payment is for the order, user "U1" and amount 100.00
    And product "L100" has 0 in stock

  @INPUT-10 @must
  Scenario Outline: A read of something that does not exist, or without its parameter, is refused
    When the <service> Service is asked for "<path>"
    Then the response status is <status> with a problem body

    Examples:
      | service | path                       | status |
      | Order   | /api/v1/orders/{unknown}   | 404    |
      | Product | /api/v1/products/{unknown} | 404    |
      | Payment | /api/v1/payments           | 400    |
