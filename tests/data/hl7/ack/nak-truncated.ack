MSH|^~\&|EHR|HOSP|LIS|LAB|20250102030405+0100||ACK^R01^ACK|ACK1|P|2.5.1
MSA|AR|R01-10|MSH ends after MSH-10: MSH-9 (message type), MSH-10 (control id), MSH-11 (processing id) and MSH-12 (version) are required; is the message truncated?
ERR||MSH^1^11^1|101^Required field missing^HL70357|E||||MSH ends after MSH-10: MSH-9 (message type), MSH-10 (control id), MSH-11 (processing id) and MSH-12 (version) are required; is the message truncated?
