MSH|^~\&|C|D|A|B|20250102030405+0100||ACK^A01^ACK|ACK1|P|2.5.1
MSA|AR|M1|a second message or batch segment (MSH) starts at byte 52: the input holds more than one message; read it as a batch
ERR||MSH^2|100^Segment sequence error^HL70357|E||||a second message or batch segment (MSH) starts at byte 52: the input holds more than one message; read it as a batch
