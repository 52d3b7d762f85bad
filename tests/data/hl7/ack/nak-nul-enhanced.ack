MSH|^~\&|EHR|HOSP|LIS|LAB|20250102030405+0100||ACK^R01^ACK|ACK1|P|2.5.1
MSA|CR|R01-9|NUL byte (0x00) in OBX-5: HL7 text may not contain NUL; the input is binary or corrupt
ERR||OBX^1^5^1|102^Data type error^HL70357|E||||NUL byte (0x00) in OBX-5: HL7 text may not contain NUL; the input is binary or corrupt
