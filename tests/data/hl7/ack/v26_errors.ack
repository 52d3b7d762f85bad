MSH|^~\&|EHR|HOSP|LIS|LAB|20250102030405+0100||ACK^R01^ACK|ACK1|T|2.6
MSA|AE|R01-55|OBX-5 must be numeric \F\ see ERR
ERR||OBX^1^5^1|102^Data type error^HL70357|E||||Value "abc" is not a number (NM)
ERR||OBR^1^4^1^1|103^Table value not found^HL70357|W||||Code GLU\S\Glucose not in local table
