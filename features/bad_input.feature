@INPUT
Feature: Bad input
  A malformed request gets a 4xx with an RFC 9457 problem body and changes nothing; a poison
  record does not stall its partition.

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
