MSH|^~\&|||||20250102030405+0100||ACK|ACK1|P|2.5.1
MSA|AR||a message must start with an MSH segment; found 'Thi'
ERR|||100^Segment sequence error^HL70357|E||||a message must start with an MSH segment; found 'Thi'
