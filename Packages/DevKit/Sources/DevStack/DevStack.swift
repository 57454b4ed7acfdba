// DevStack
